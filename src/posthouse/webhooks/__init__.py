"""Webhooks: a user's HTTPS/HTTP endpoints told of CRM events (an activity
logged, a reply, a bounce, an unsubscribe, a complaint) in the user's own
accounts, as signed JSON, delivered in the background with retries.

tables.py the rows; store.py subscriptions and the delivery queue;
signing.py the signature scheme; events.py CrmEvents -> queued deliveries;
sender.py the background task that posts them; service.py the wiring in
`posthouse serve` (and `posthouse tracker`)."""
