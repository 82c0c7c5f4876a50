"""Reading finished runs back: compare tables, figures, parameter importances, statistics."""
