"""The pipeline's steps, free of Dagster: they wire the Graph client, selection, parsing and the
store together, and the Dagster assets call them."""
