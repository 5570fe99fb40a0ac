"""textkit.core: text statistics, the public API of the textkit libraries."""
