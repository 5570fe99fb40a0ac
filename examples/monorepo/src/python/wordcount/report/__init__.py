"""wordcount.report: reports over analyzed documents."""
