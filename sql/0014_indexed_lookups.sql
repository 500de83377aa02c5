-- Look-ups that must stay indexed as the tables grow. Each was a sequential scan of its
-- whole table (about 10 ms at 85,000 orders, and growing with them). Built in the
-- migration's transaction, as every migration runs: writes to each table wait while its
-- index is built, one to two seconds per million rows here. They serve:
-- the payment a provider's webhook names only by its PaymentIntent (disputes and the charge
-- events that carry no metadata), looked up by the payment worker;
CREATE INDEX payments_provider_reference_idx ON payments (provider_reference) WHERE provider_reference IS NOT NULL;
-- the payments of the last day that the payment worker compares with the provider's charges
-- (`PAYMENT_RECONCILE_LOOKBACK_HOURS`), every 15 minutes in each replica;
CREATE INDEX payments_created_idx ON payments (created_at);
-- an order's notifications, listed on the console's order page;
CREATE INDEX notifications_order_idx ON notifications (order_id);
-- an order's refunds, listed on the order pages of the API and the console.
CREATE INDEX refunds_order_idx ON refunds (order_id);
