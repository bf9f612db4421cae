"""Escalation to Linear (DESIGN.md section 6): the outbox that keeps each report's
`status.escalation` and delivers it (`outbox`), what is sent and how it is recorded
(`escalator`), the GraphQL client (`linear`) and its documents (`documents`)."""
