"""wordcount.app: the word count command line, top of the example's dependency chain."""
