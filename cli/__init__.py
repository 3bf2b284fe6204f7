"""The `promscope` command line."""
