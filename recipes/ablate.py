"""Run an ablation grid (see trocr_lail/experiments/ablation.py for the grid format) and write a Markdown table + plot.

    python recipes/ablate.py --grid recipes/ablations/quickstart.yaml
    python recipes/ablate.py --grid recipes/ablations/quickstart.yaml --dry_run   # print the commands only
    python recipes/ablate.py --grid G --shard 0/2 & python recipes/ablate.py --grid G --shard 1/2; wait
    python recipes/ablate.py --grid G                                              # collect, write the report
    python recipes/ablate.py --grid G --collect_only                               # report what has finished
    python recipes/ablate.py --grid G --only '^baseline_.*300'                     # run the cells it matches
"""

import argparse

from trocr_lail.experiments.ablation import Grid, run_grid
from trocr_lail.experiments.ablation_report import write_report

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", required=True, help="Grid YAML: recipe, output_dir, overrides, grid, cells.")
    parser.add_argument("--dry_run", action="store_true", help="Print each cell's command and run nothing.")
    parser.add_argument("--collect_only", action="store_true",
                        help="Run nothing: report the runs that have results (a partial grid).")
    parser.add_argument("--shard", default="0/1", help="K/N: run cells K, K+N, ... only (N runners in parallel; "
                                                       "then one unsharded call writes the report).")
    parser.add_argument("--only", default=None, help="Regular expression: run (or collect) only the cells whose "
                                                     "name it matches; the report then covers those.")
    args = parser.parse_args()
    grid = Grid.from_file(args.grid)
    index, count = (int(part) for part in args.shard.split("/"))
    rows = run_grid(grid, dry_run=args.dry_run, shard=(index, count), collect_only=args.collect_only,
                    only=args.only)
    if not args.dry_run and count == 1:
        print(f"Wrote {write_report(grid, rows, args.grid)}")
