"""compress as phases: ``original`` (the user's model and data), ``build`` (a recipe's steps
run on it), and the phases the compress pipeline adds beside them."""
