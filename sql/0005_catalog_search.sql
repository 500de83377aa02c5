-- Catalog search: product images, a weighted full-text document (name over description),
-- and review aggregates kept on the product.
ALTER TABLE products ADD COLUMN images text[] NOT NULL DEFAULT '{}';
ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
  setweight(to_tsvector('english', coalesce(name, '')), 'A') ||
  setweight(to_tsvector('english', coalesce(description, '')), 'B')
) STORED;
CREATE INDEX products_search_idx ON products USING gin (search);
CREATE INDEX products_price_idx ON products (price_cents, id);
ALTER TABLE products ADD COLUMN rating_count int4 NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN rating_sum int8 NOT NULL DEFAULT 0;
CREATE INDEX product_categories_category_idx ON product_categories (category_id);
