-- The reconciler's index of an order's unpublished events, narrowed so that only look-ups by
-- order can use it. As `(order_id) WHERE published_at IS NULL` it matched any query that asks
-- for unpublished rows, and the planner chose it for the relay's and the workers' marks
-- (`WHERE id = ANY($1) AND published_at IS NULL`): ANALYZE sees almost no unpublished rows, so
-- the index looked nearly empty and cheaper than the primary key. Under load it holds every
-- event not yet marked plus the entries of the rows marked since the last vacuum, and each mark
-- read all of them: 414 buffers for 8 ids with 317 events waiting, in a saturated run of
-- 2026-12-07, against about 32 through the primary key. `order_id IS NOT NULL` is implied by
-- the reconciler's `x.order_id = o.id` (a strict operator), so its look-up still uses this
-- index, and no statement that names no order can. Rows without an order were never looked
-- up through it, so leaving them out loses nothing.
CREATE INDEX outbox_order_unpublished_by_order_idx ON outbox (order_id) WHERE published_at IS NULL AND order_id IS NOT NULL;
DROP INDEX outbox_order_unpublished_idx;
ALTER INDEX outbox_order_unpublished_by_order_idx RENAME TO outbox_order_unpublished_idx;
