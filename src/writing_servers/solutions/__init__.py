"""Reference solutions to the notebooks' exercises, one module per section.

Try the exercise first: the check cell tells you what is still wrong.
"""
