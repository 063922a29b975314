from sekisho.cli import run

run()
