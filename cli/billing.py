"""stub"""
COMMANDS = []
