from handoff.faces.cli import run

run()
