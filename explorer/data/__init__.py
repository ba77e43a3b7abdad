"""Data sets for the labs, as ``datasets.DatasetDict`` objects made locally (never downloaded)."""
