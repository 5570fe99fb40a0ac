"""wordcount.formats: render reports as plain text or JSON."""
