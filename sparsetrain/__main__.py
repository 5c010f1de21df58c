"""`python -m sparsetrain` is the `sparsetrain` command."""

from sparsetrain.cli import main

main()
