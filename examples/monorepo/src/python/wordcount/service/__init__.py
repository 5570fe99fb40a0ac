"""wordcount.service: analyze documents with textkit according to user settings."""
