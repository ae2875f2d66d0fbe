"""Studies: a grid of runs from one YAML file, run resumably (and in parallel), summarised in a report."""
from .report import collect, write_report
from .runner import estimate, execute_run, run_study
from .spec import Study, load_study, parse_study, run_id

__all__ = ["Study", "collect", "estimate", "execute_run", "load_study", "parse_study", "run_id", "run_study",
           "write_report"]
