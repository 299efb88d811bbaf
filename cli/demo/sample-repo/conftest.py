# Makes the `textstats` package importable from the tests without installing it.
