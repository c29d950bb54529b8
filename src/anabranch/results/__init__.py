"""Result persistence: serializers and fsspec storage. The database only keeps a ResultRef."""

from anabranch.results.references import ResultRef
from anabranch.results.serializers import get_serializer
from anabranch.results.storage import ResultStore, load_result

__all__ = ["ResultRef", "ResultStore", "get_serializer", "load_result"]
