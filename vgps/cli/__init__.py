"""The ``vgps`` command: :mod:`vgps.cli.main` builds the parser; one thin module per subcommand
(``critic``, ``eval``/``collect``, ``monitor``, ``replay``, ``up``) parses its arguments and calls
one library function."""
