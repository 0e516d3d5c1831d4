"""Create the initial weights that every optimizer starts from."""
