"""Result persistence: serializers (``results.serializers``, the only module importing
cloudpickle) and fsspec storage (``results.storage``). The database only keeps a ResultRef;
importing this package imports neither, so schemas and the server stay free of them."""

from anabranch.results.references import ResultRef

__all__ = ["ResultRef"]
