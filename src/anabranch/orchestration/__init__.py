"""The rules, written once as functions over a database connection.

The embedded client and the server both call these; the caller owns the transaction.
"""
