"""What the report and README show: generated LaTeX tables and numbers, README sections, plots, figure helpers
and image grids. Reads results; trains and evaluates nothing."""
