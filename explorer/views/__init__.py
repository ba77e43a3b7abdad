"""Pure figure builders: arrays and records in, plotly figures out. No widgets and no torch modules here."""
