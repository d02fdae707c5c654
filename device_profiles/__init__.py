"""Bundled device profiles (one YAML file each) and their schema; see ``edgeship.profiles``."""
