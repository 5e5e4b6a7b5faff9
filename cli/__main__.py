from cli.main import radbill

radbill(prog_name="radbill")
