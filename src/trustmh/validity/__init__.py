"""Validity of the numbers (protocol 1.8): null responders and judges, floors, coverage,
degenerate responders and the refusal detector's measured accuracy."""
