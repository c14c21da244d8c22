"""A platform plug-in shipped as its own distribution (in `site/`), and the test that adds it."""
