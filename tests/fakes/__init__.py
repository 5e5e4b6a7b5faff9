"""Fakes of the routers radbill talks to, speaking the real wire protocols."""
