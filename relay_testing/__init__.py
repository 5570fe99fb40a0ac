"""Test support for the relay, never in its wheel or PEX: fixture exports (relay_testing.exports, also
a stand-in export command, `python -m relay_testing.exports`) and a local object store
(relay_testing.seaweedfs)."""
