"""DiagnosisReports: built from a finding (`build`, pure), written by server-side apply
(`store`), the recommended patch checked by the apiserver (`dry_run`), the Events on the
workload (`events`), and rendered for a person (`render`)."""
