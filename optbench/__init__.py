"""optbench: which optimizer should I train this network with?"""
