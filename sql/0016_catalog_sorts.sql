-- The catalog's sorts, read along an index: the storefront's home page (the newest products in
-- stock), its search pages and the API's product list. Without these, a page sorted by newest,
-- name or rating sorted every active product to return 8 or 24 of them: 50-70 ms a page at
-- 100,000 products here, against 0.15-0.25 ms along these indexes. Price already had its
-- index (0005), and a text search ranks its matches whatever the index.
-- Built in the migration's transaction like 0014: writes to products (the stock worker's)
-- wait while they build, about 0.3 s per 100,000 products here.
-- Only active products are listed, so the indexes hold only them. A stock change (stock,
-- version, updated_at) touches none of their columns, so it can still be a HOT update as
-- before; when it cannot (no room on the page) it writes an entry in each of these too. A
-- review changes the rating, so it is never HOT.
CREATE INDEX products_newest_idx ON products (created_at DESC, id) WHERE is_active;
CREATE INDEX products_name_idx ON products (name, id) WHERE is_active;
-- The expression is `CatalogStore.sorts["rating"]` word for word: the planner uses the index
-- only for that expression.
CREATE INDEX products_rating_idx ON products ((CASE WHEN rating_count = 0 THEN 0 ELSE rating_sum::float8 / rating_count END) DESC, id)
    WHERE is_active;
