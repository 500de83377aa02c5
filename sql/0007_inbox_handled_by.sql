-- Which process handled each message (hostname:pid, or EMPORIUM_INSTANCE): shows how work
-- spreads over worker replicas, and which replica to look at for a given message.
ALTER TABLE inbox ADD COLUMN handled_by text;
