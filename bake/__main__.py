from bake.cli import run

run()
