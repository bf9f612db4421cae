"""The running operator: kopf wiring (`handlers`, thin), the controller that turns watch
events into reports (`controller`), leader election (`leader`), the runner (`runner`),
logging (`logs`) and the operator's own metrics (`metrics`)."""
