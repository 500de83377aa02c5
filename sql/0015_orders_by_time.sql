-- Orders by the time they were placed, newest first: what the console reads while it is open.
-- The overview counts the last hour's orders per minute every few seconds, and the orders
-- list walks the newest orders a page at a time (re-read whenever an order event arrives).
-- Without this index each of those read the whole orders table (the per-minute chart once
-- per minute of the hour). One more index entry per placed order; `created_at` never
-- changes, so it costs nothing on the orders' status updates. Built in the migration's
-- transaction like 0014: placements wait while it builds, half a second per million orders here.
CREATE INDEX orders_created_idx ON orders (created_at DESC, id);
