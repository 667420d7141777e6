"""CareerBuilder job-view logs (R-exported CSVs: dotted column names, ``NA`` for missing).

* ``Job_Views.csv``: Applicant.ID, Job.ID, Title, Position, Company, City, State.Name,
  State.Code, Industry, View.Start ("2014-12-12 20:12:35 UTC"), View.End, ... Titles may hold
  quoted newlines.
* ``Experience.csv`` (optional): applicants' past positions -> users' ``experience`` text.
* ``Positions_Of_Interest.csv`` (optional): -> users' ``positions_of_interest`` text.

A view is an implicit positive; there are no ratings. The job catalogue is built from the views
(a job's first row wins where rows disagree, e.g. a missing industry).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmrec.data.loaders._tables import clean_text, read_table
from llmrec.data.schema import ITEM, TIME, USER, Dataset

NA = ("NA",)
VIEWS_FILE = "Job_Views.csv"
EXPERIENCE_FILE = "Experience.csv"
INTEREST_FILE = "Positions_Of_Interest.csv"
VIEW_COLUMNS = ("Applicant.ID", "Job.ID", "Title", "Position", "Company", "City", "State.Name", "Industry",
                "View.Start")
ITEM_TEXT = {"title": "Title", "position": "Position", "company": "Company", "city": "City",
             "state": "State.Name", "industry": "Industry"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def joined_text(path: Path, column: str) -> pd.Series:
    """Per applicant, the distinct non-missing values of ``column`` joined by "; " (file order)."""
    table = read_table(path, delimiter=",", required=("Applicant.ID", column), quoted=True)
    table.integers("Applicant.ID", "an integer applicant id")
    values = pd.DataFrame({USER: table.frame["Applicant.ID"].str.strip(),
                           "text": clean_text(table.frame[column], NA)}).dropna()
    values = values[~values.assign(key=values["text"].str.lower()).duplicated([USER, "key"])]
    return values.groupby(USER, sort=False)["text"].agg("; ".join)


def load_job_views(folder: str | Path) -> Dataset:
    """Load the job-view logs in ``folder``; domain "job", users with text where the files have it."""
    folder = Path(folder)
    views = read_table(folder / VIEWS_FILE, delimiter=",", required=VIEW_COLUMNS, quoted=True)
    views.integers("Applicant.ID", "an integer applicant id")
    views.integers("Job.ID", "an integer job id")
    frame = views.frame
    interactions = pd.DataFrame({
        USER: frame["Applicant.ID"].str.strip().to_numpy(),
        ITEM: frame["Job.ID"].str.strip().to_numpy(),
        TIME: views.unix_seconds("View.Start", TIME_FORMAT, 'a time like "2014-12-12 20:12:35 UTC"'),
    })
    items = pd.DataFrame({name: clean_text(frame[col], NA).to_numpy() for name, col in ITEM_TEXT.items()},
                         index=pd.Index(interactions[ITEM].to_numpy(), name=ITEM))
    # Rows of one job disagree only by missing values; the first complete value per field wins.
    items = items.groupby(level=0, sort=False).first()

    user_ids = pd.Index(interactions[USER].unique(), name=USER)
    users = pd.DataFrame(index=user_ids)
    for file, column, name in ((EXPERIENCE_FILE, "Position.Name", "experience"),
                               (INTEREST_FILE, "Position.Of.Interest", "positions_of_interest")):
        if (folder / file).exists():
            users[name] = joined_text(folder / file, column).reindex(user_ids).to_numpy()
    return Dataset(name="job-views", interactions=interactions, items=items,
                   users=users if len(users.columns) else None, domain="job", source=str(folder))
