"""What every exporter shares: the wheel writer, the export directory contract and dist names."""
