#!/usr/bin/env python3
"""Writes the OpenAPI 3.1 document of the Emporium API and its /docs page into
Sources/API/OpenAPIDocument.swift (served at /api/v1/openapi.json and /docs).

This file is the source of the document; the Swift file is its output, committed so the
API needs nothing at run time. `--check` fails when the committed output is stale (make
test runs it). The field rules here mirror Sources/API/FieldRules.swift exactly: a client
that follows the document is accepted and one that does not is refused, which the
schemathesis run in `make test` checks against the live API.
"""
import html
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "Sources/API/OpenAPIDocument.swift"

# ---- field rules (FieldRules.swift) ----------------------------------------------------
NUL_FREE = r"^[^\u0000]*$"
NON_BLANK = r"^[^\u0000]*[^\u0000 \t\r\n][^\u0000]*$"
NOT_ONLY_DIGITS = r"^[^\u0000]*[^\u00000-9][^\u0000]*$"
# Names and address fields (they reach emails): no control characters at all (C0, DEL, C1,
# U+2028/U+2029), and not only spaces.
NO_CONTROLS = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
NAME = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\u0000-\u0020\u007f-\u009f\u2028\u2029][^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
HTTP_URL = r"^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[!-~]*)?$"
# AuthController.commonPasswords, matched case-insensitively (OpenAPITests checks the two agree).
COMMON_PASSWORDS = [
    "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyuiop", "qwerty123",
    "iloveyou", "11111111", "00000000", "abc12345", "letmein1", "welcome1", "admin123", "passw0rd",
]
MAX_PRICE = 10_000_000_000


def caseless(word):
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def text(max_length, description=None):
    """Required text: not only spaces, tabs or line breaks; no NUL."""
    schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NON_BLANK}
    if description:
        schema["description"] = description
    return schema


def name(max_length):
    """A name or address line: not only spaces; no control characters (FieldRules.isName)."""
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NAME,
            "description": "no control characters (line breaks, tabs, NUL, C1), not only spaces"}


def optional_name(max_length):
    """An optional address line: possibly empty; no control characters."""
    return {"type": ["string", "null"], "maxLength": max_length, "pattern": NO_CONTROLS}


def free_text(max_length, nullable=True):
    """Optional text, possibly empty; no NUL."""
    return {"type": ["string", "null"] if nullable else "string", "maxLength": max_length, "pattern": NUL_FREE}


def token(pattern, description):
    return {"type": "string", "pattern": pattern, "description": description}


# Formats are annotations in OpenAPI 3.1 (JSON Schema 2020-12), so request ids carry the pattern too.
UUID_PATTERN = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
UUID = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
DATE_TIME = {"type": "string", "format": "date-time"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
STRING = {"type": "string"}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties, required=None, description=None):
    schema = {"type": "object", "properties": properties, "required": sorted(required if required is not None else properties)}
    if description:
        schema["description"] = description
    return schema


def page_of(item):
    return obj({
        "items": {"type": "array", "items": ref(item)},
        "page": {"type": "integer", "minimum": 1},
        "page_size": {"type": "integer", "minimum": 1, "maximum": 100},
        "total": {"type": "integer", "minimum": 0},
    }, description=f"One page of {item} items, in a stable order.")


ADDRESS_FIELDS = {
    "line1": name(200),
    "line2": optional_name(200),
    "city": name(100),
    "postal_code": name(20),
    "country": token("^[A-Z]{2}$", "ISO 3166-1 alpha-2 code, e.g. DE"),
}

SCHEMAS = {
    "Problem": obj({
        "type": STRING, "title": STRING, "status": INT, "detail": STRING, "instance": STRING,
        "errors": {"type": "array", "items": obj({"field": STRING, "message": STRING})},
        "checks": {"type": "object", "additionalProperties": STRING},
    }, required=["type", "title", "status", "detail"], description="RFC 9457 problem details; `errors` lists the offending fields."),
    "Health": obj({"status": {"const": "ok"}}),
    "Readiness": obj({"status": {"const": "ready"}, "checks": {"type": "object", "additionalProperties": STRING}}),
    "Registration": obj({
        "email": {"type": "string", "maxLength": 254, "pattern": EMAIL},
        "password": {
            "type": "string", "minLength": 8, "maxLength": 128, "pattern": NOT_ONLY_DIGITS,
            "not": {"pattern": "^(" + "|".join(caseless(p) for p in COMMON_PASSWORDS) + ")$"},
            "description": "8 to 128 characters, not only digits; common passwords are refused.",
        },
        "first_name": name(100), "last_name": name(100),
    }),
    "Credentials": obj({"email": STRING, "password": STRING}),
    "RefreshRequest": obj({"refresh_token": STRING}),
    "Tokens": obj({
        "access_token": {"type": "string", "description": "JWT (HS256), valid for `expires_in` seconds"},
        "refresh_token": {"type": "string", "description": "Opaque; works once and is replaced by the new one returned"},
        "token_type": {"const": "Bearer"}, "expires_in": INT,
    }),
    "NewUser": obj({"id": UUID, "email": STRING, "first_name": STRING, "last_name": STRING, "role": ref("Role")}),
    "Role": {"type": "string", "enum": ["CUSTOMER", "SELLER", "ADMIN", "SUPERADMIN"]},
    "User": obj({
        "id": UUID, "email": STRING, "first_name": STRING, "last_name": STRING, "role": ref("Role"),
        "is_active": BOOL, "created_at": DATE_TIME,
    }),
    "UserPage": page_of("User"),
    "ProfileChange": obj({"first_name": name(100), "last_name": name(100)}),
    "AdminUserChange": obj({
        "first_name": {"anyOf": [name(100), {"type": "null"}]},
        "last_name": {"anyOf": [name(100), {"type": "null"}]},
        "is_active": {"type": ["boolean", "null"], "description": "false deactivates the account and ends its sessions"},
        "role": {"anyOf": [ref("Role"), {"type": "null"}], "description": "only a SUPERADMIN changes roles"},
    }, required=[], description="Fields left out (or null) keep their value."),
    "AddressInput": obj({**ADDRESS_FIELDS, "is_default": {"type": ["boolean", "null"]}}, required=["line1", "city", "postal_code", "country"]),
    "Address": obj({
        "id": UUID, "line1": STRING, "line2": STRING, "city": STRING, "postal_code": STRING, "country": STRING, "is_default": BOOL,
    }, required=["id", "line1", "city", "postal_code", "country", "is_default"]),
    "AddressList": obj({"items": {"type": "array", "items": ref("Address")}}),
    "Category": obj({"id": UUID, "name": STRING, "slug": STRING, "parent_id": UUID}, required=["id", "name", "slug"]),
    "CategoryInput": obj({
        "name": text(100),
        "slug": token("^[a-z0-9-]{1,64}$", "1 to 64 lower-case letters, digits or dashes; unique"),
        "parent_id": {"type": ["string", "null"], "format": "uuid", "pattern": UUID_PATTERN, "description": "an existing category, not this one or below it"},
    }, required=["name", "slug"]),
    "CategoryList": obj({"items": {"type": "array", "items": ref("Category")}}),
    "ProductInput": obj({
        "name": text(200),
        "description": free_text(2000),
        "sku": token("^[A-Za-z0-9._-]{1,64}$", "unique stock-keeping unit"),
        "price_cents": {"type": "integer", "minimum": 0, "maximum": MAX_PRICE},
        "currency": token("^[A-Z]{3}$", "ISO 4217 code, e.g. EUR"),
        "stock": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000},
        "images": {"type": ["array", "null"], "maxItems": 10, "items": {"type": "string", "maxLength": 1000, "pattern": HTTP_URL}},
        "category_ids": {"type": ["array", "null"], "maxItems": 20, "items": UUID, "description": "existing categories"},
        "is_active": {"type": ["boolean", "null"], "description": "inactive products are not listed or sold (default true)"},
    }, required=["name", "sku", "price_cents", "currency", "stock"]),
    "Product": obj({
        "id": UUID, "name": STRING, "description": STRING, "sku": STRING, "price_cents": INT, "currency": STRING, "stock": INT,
        "version": {"type": "integer", "description": "increases with every update; send it back to update"},
        "seller_id": UUID, "images": {"type": "array", "items": STRING}, "is_active": BOOL,
        "category_ids": {"type": "array", "items": UUID},
        "rating_average": {"type": "number", "description": "absent until the first review"}, "rating_count": INT,
    }, required=["id", "name", "description", "sku", "price_cents", "currency", "stock", "version", "images", "is_active", "category_ids", "rating_count"]),
    "ProductPage": page_of("Product"),
    "ReviewInput": obj({"rating": {"type": "integer", "minimum": 1, "maximum": 5}, "body": free_text(2000)}, required=["rating"]),
    "Review": obj({"id": UUID, "product_id": UUID, "user_id": UUID, "author_name": STRING, "rating": INT, "body": STRING, "created_at": DATE_TIME}),
    "ReviewPage": page_of("Review"),
    "CartItemInput": obj({"product_id": UUID, "quantity": {"type": "integer", "minimum": 1, "maximum": 100}}),
    "CartQuantity": obj({"quantity": {"type": "integer", "minimum": 1, "maximum": 100}}),
    "CartItem": obj({"id": UUID, "product_id": UUID, "name": STRING, "quantity": INT, "unit_price_cents": INT, "currency": STRING}),
    "Cart": obj({
        "id": UUID,
        "items": {"type": "array", "items": ref("CartItem")},
        "total_cents": INT, "currency": {"type": "string", "description": "absent while the cart is empty"},
    }, required=["id", "items", "total_cents"]),
    "ShippingAddress": obj(ADDRESS_FIELDS, required=["line1", "city", "postal_code", "country"]),
    "PlaceOrder": obj({
        "payment_method": token("^[A-Za-z0-9_]{1,64}$", "a card token such as tok_visa, or `manual` to pay later via /payments/intent and /payments/confirm"),
        "shipping_address": ref("ShippingAddress"),
        "expected_total_cents": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**63 - 1,
                                 "description": "the total (cents) the client accepts at the current prices; needed only when a price changed since a line was added"},
    }, required=["payment_method", "shipping_address"]),
    "Order": obj({
        "id": UUID, "order_number": {"type": "string", "description": "EMP-YYMMDD-XXXXXX"},
        "status": {"type": "string", "enum": ["PENDING", "AWAITING_PAYMENT", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"]},
        "cancellation_reason": STRING, "payment_method": STRING,
        "shipping_address": obj({"line1": STRING, "line2": STRING, "city": STRING, "postal_code": STRING, "country": STRING}, required=["line1", "city", "postal_code", "country"]),
        "items": {"type": "array", "items": obj({"product_id": UUID, "name": STRING, "sku": STRING, "quantity": INT, "unit_price_cents": INT})},
        "subtotal_cents": INT, "tax_cents": INT, "shipping_cents": INT, "total_cents": INT, "currency": STRING,
        "status_history": {"type": "array", "items": obj({"from_status": STRING, "to_status": STRING, "reason": STRING, "changed_at": DATE_TIME}, required=["to_status", "changed_at"])},
        "created_at": DATE_TIME,
    }, required=["id", "order_number", "status", "payment_method", "shipping_address", "items", "subtotal_cents", "tax_cents",
                 "shipping_cents", "total_cents", "currency", "status_history", "created_at"]),
    "OrderPage": page_of("Order"),
    "StatusChange": obj({"status": {"type": "string", "enum": ["SHIPPED", "DELIVERED"]}}),
    "IntentRequest": obj({"order_id": UUID}),
    "ConfirmRequest": obj({
        "payment_id": UUID,
        "payment_method": {**token("^[A-Za-z0-9_]{1,64}$", "a card token such as tok_visa"), "not": {"const": "manual"}},
    }),
    "PaymentIntent": obj({"payment_id": UUID, "order_id": UUID, "amount_cents": INT, "currency": STRING, "status": STRING}),
    "Payment": obj({
        "id": UUID, "order_id": UUID, "amount_cents": INT, "currency": STRING, "method": STRING, "status": STRING,
        "failure_reason": STRING, "refunded_cents": INT, "created_at": DATE_TIME,
    }, required=["id", "order_id", "amount_cents", "currency", "method", "status", "created_at"]),
    "PaymentPage": page_of("Payment"),
}

# ---- responses --------------------------------------------------------------------------
ERRORS = {
    400: "Malformed JSON, a wrong type, a missing field, or a bad query parameter",
    401: "No valid access token (or, for auth routes, wrong credentials)",
    403: "The caller's role may not do this",
    404: "No such resource, or it belongs to someone else",
    405: "The path exists but not with this method; `Allow` lists the methods",
    409: "The resource's current state does not allow this",
    412: "If-Match names a version that is no longer current",
    413: "The body is larger than 64 KiB",
    422: "Fields failed validation; `errors` lists them",
    428: "An update must name the version it is based on",
    429: "Too many requests (or failed sign-ins); `Retry-After` says when to retry",
    503: "PostgreSQL is unreachable; retry after `Retry-After` seconds",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}


def problem(status):
    response = {"description": ERRORS[status], "content": {"application/problem+json": {"schema": ref("Problem")}}}
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def json_body(schema, description, headers=None):
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


PAGE_PARAMS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 1}},
    {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
]
ID = [{"name": "id", "in": "path", "required": True, "schema": UUID}]

OPERATIONS = []  # (path, method, spec, roles)


def op(path, method, summary, *, tag, ok, errors=(), body=None, params=(), auth=True, roles="any signed-in user", description=None):
    codes = set(errors) | {429}
    if auth:
        codes |= {401}
    if body is not None:
        codes |= {400, 413, 422}
    if any(p["in"] == "query" for p in params):
        codes |= {400}
    if path not in ("/health", "/ready", "/docs", "/api/v1/openapi.json"):
        codes |= {503}
    elif path != "/ready":  # /ready is rate limited like the API; /health and the documents are not
        codes.discard(429)
    spec = {"tags": [tag], "summary": summary, "operationId": f"{method}_{path}".replace("/api/v1/", "").replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")}
    if description:
        spec["description"] = description
    if auth:
        spec["security"] = [{"bearerAuth": []}]
        spec["description"] = (spec.get("description", "") + f"\n\nRoles: {roles}.").strip()
    if params:
        spec["parameters"] = list(params)
    if body is not None:
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
    spec["responses"] = {**ok, **{str(c): problem(c) for c in sorted(codes)}}
    OPERATIONS.append((path, method, spec, roles if auth else "public"))


NO_CONTENT = {"204": {"description": "Done"}}
LOCATION = {"Location": {"schema": {"type": "string"}, "description": "the new resource"}}

# Probes and documentation
op("/health", "get", "The process is alive", tag="operations", auth=False, ok={"200": json_body(ref("Health"), "Alive")})
op("/ready", "get", "PostgreSQL and RabbitMQ answer", tag="operations", auth=False,
   ok={"200": json_body(ref("Readiness"), "Ready"), "503": {**problem(503), "description": "A dependency is unreachable; `checks` names it"}})
op("/api/v1/openapi.json", "get", "This document", tag="operations", auth=False, ok={"200": json_body({"type": "object"}, "OpenAPI 3.1")})
op("/docs", "get", "Human-readable API reference", tag="operations", auth=False,
   ok={"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}})

# Auth
op("/api/v1/auth/register", "post", "Create a customer account", tag="auth", auth=False, body="Registration", errors=[409],
   description="A taken email is 409 (registration tells whether an email is registered; sign-in never does). "
               "Each client address may register REGISTRATIONS_PER_ADDRESS_PER_HOUR accounts an hour (then 429 with Retry-After), "
               "and while too many passwords are being hashed the answer is 503 with Retry-After at once. "
               "Email addresses are not verified.",
   ok={"201": json_body(ref("NewUser"), "Created; sign in with /auth/login", LOCATION)})
op("/api/v1/auth/login", "post", "Sign in: an access token and a refresh token", tag="auth", auth=False, body="Credentials", errors=[401],
   description="Throttled: after LOGIN_MAX_FAILURES_PER_ACCOUNT failures for one account from one client address, and "
               "LOGIN_MAX_FAILURES_PER_ADDRESS from one address across accounts, within the window, the next attempts from that "
               "address are 429 with Retry-After without being checked. Failures from other addresses never refuse the right "
               "password; past LOGIN_SLOWDOWN_AFTER they only delay each attempt (at most 5 s). 503 with Retry-After while "
               "the server is busy checking passwords.",
   ok={"200": json_body(ref("Tokens"), "Signed in")})
op("/api/v1/auth/refresh", "post", "Trade a refresh token for new tokens (rotation)", tag="auth", auth=False, body="RefreshRequest", errors=[401],
   description="Each refresh token works once. Presenting a used one again revokes its whole family (every token descended from the same sign-in).",
   ok={"200": json_body(ref("Tokens"), "New tokens; the old refresh token is spent")})
op("/api/v1/auth/logout", "post", "Revoke a refresh token's family", tag="auth", auth=False, body="RefreshRequest", ok=NO_CONTENT)
op("/api/v1/auth/logout-all", "post", "Sign out everywhere", tag="auth",
   description="Revokes every refresh token of the account and refuses every access token issued until now.", ok=NO_CONTENT)

# Users
op("/api/v1/users/me", "get", "The caller's profile", tag="users", errors=[404], ok={"200": json_body(ref("User"), "Profile")})
op("/api/v1/users/me", "put", "Change the caller's name", tag="users", body="ProfileChange", errors=[404],
   description="Only the names change; `role`, `email` and other fields in the body are ignored.", ok={"200": json_body(ref("User"), "Updated")})
op("/api/v1/users/me/addresses", "get", "The caller's addresses", tag="users", ok={"200": json_body(ref("AddressList"), "Addresses")})
op("/api/v1/users/me/addresses", "post", "Add an address (at most 20)", tag="users", body="AddressInput", errors=[409],
   ok={"201": json_body(ref("Address"), "Created")})
op("/api/v1/users/me/addresses/{id}", "put", "Replace one of the caller's addresses", tag="users", body="AddressInput", params=ID, errors=[404],
   ok={"200": json_body(ref("Address"), "Updated")})
op("/api/v1/users/me/addresses/{id}", "delete", "Delete one of the caller's addresses", tag="users", params=ID, errors=[404], ok=NO_CONTENT)
op("/api/v1/users", "get", "All users, paged", tag="users", params=PAGE_PARAMS, errors=[403], roles="ADMIN, SUPERADMIN",
   ok={"200": json_body(ref("UserPage"), "Users")})
op("/api/v1/users/{id}", "get", "One user", tag="users", params=ID, errors=[403, 404], roles="ADMIN, SUPERADMIN",
   ok={"200": json_body(ref("User"), "User")})
op("/api/v1/users/{id}", "put", "Change a user: names, active flag, role", tag="users", params=ID, body="AdminUserChange", errors=[403, 404, 409],
   roles="ADMIN, SUPERADMIN (roles, and other admins: SUPERADMIN only)",
   description="Nobody changes their own `is_active` or `role` (403). Suspension, closure and role changes apply to access tokens already issued.",
   ok={"200": json_body(ref("User"), "Updated")})
op("/api/v1/users/{id}", "delete", "Close an account: no sign-in, gone from this API (its orders stay)", tag="users", params=ID, errors=[403, 404, 409],
   roles="ADMIN, SUPERADMIN (other admins: SUPERADMIN only)", ok=NO_CONTENT)

# Catalog
op("/api/v1/categories", "get", "The category tree, flat (`parent_id` links it)", tag="catalog", auth=False,
   ok={"200": json_body(ref("CategoryList"), "Categories")})
op("/api/v1/categories", "post", "Create a category", tag="catalog", body="CategoryInput", errors=[403, 404, 409], roles="ADMIN, SUPERADMIN",
   ok={"201": json_body(ref("Category"), "Created")})
op("/api/v1/categories/{id}", "put", "Rename or move a category", tag="catalog", params=ID, body="CategoryInput", errors=[403, 404, 409],
   roles="ADMIN, SUPERADMIN", ok={"200": json_body(ref("Category"), "Updated")})
op("/api/v1/categories/{id}", "delete", "Delete a category without subcategories", tag="catalog", params=ID, errors=[403, 404, 409],
   roles="ADMIN, SUPERADMIN", ok=NO_CONTENT)
op("/api/v1/products", "get", "Search and filter active products", tag="catalog", auth=False, params=[
    {"name": "q", "in": "query", "description": "full-text search, ranked by relevance", "schema": {"type": "string", "maxLength": 200}},
    {"name": "category", "in": "query", "description": "category id or slug; includes its subcategories", "schema": {"type": "string"}},
    {"name": "min_price", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PRICE}},
    {"name": "max_price", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PRICE}},
    {"name": "in_stock", "in": "query", "schema": {"type": "boolean"}},
    {"name": "sort", "in": "query", "description": "default: relevance with q, else newest",
     "schema": {"type": "string", "enum": ["relevance", "price_asc", "price_desc", "newest", "name", "rating"]}},
    *PAGE_PARAMS,
], ok={"200": json_body(ref("ProductPage"), "Matching products")})
op("/api/v1/products/{id}", "get", "One active product", tag="catalog", auth=False, params=ID, errors=[404],
   description="Public. An inactive product is 404, except to an admin or its seller sending their access token.",
   ok={"200": json_body(ref("Product"), "Product", {"ETag": {"schema": {"type": "string"}, "description": "the version, quoted"}})})
op("/api/v1/products", "post", "Create a product", tag="catalog", body="ProductInput", errors=[403, 404, 409],
   roles="SELLER (owns what it creates), ADMIN, SUPERADMIN", ok={"201": json_body(ref("Product"), "Created", LOCATION)})
SCHEMAS["ProductUpdate"] = {
    "allOf": [ref("ProductInput"), obj({"version": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1, "description": "the version the change is based on"}})],
    "description": "The whole product, with the `version` it was read at.",
}
op("/api/v1/products/{id}", "put", "Replace a product (optimistic locking)", tag="catalog", params=ID, body="ProductUpdate",
   errors=[403, 404, 409, 412, 428], roles="the owning SELLER, ADMIN, SUPERADMIN",
   description="A stale `version` is refused with 409 and changes nothing. Instead of `version`, a client may send "
               "`If-Match: \"<version>\"` (the product's ETag); a stale If-Match is 412. Omitted `images`, `category_ids` and "
               "`is_active` keep their value.",
   ok={"200": json_body(ref("Product"), "Updated; `version` increased")})
op("/api/v1/products/{id}/reviews", "get", "A product's reviews, newest first", tag="reviews", auth=False, params=[*ID, *PAGE_PARAMS], errors=[404],
   description="Public; for an inactive product, only to an admin or its seller sending their access token.",
   ok={"200": json_body(ref("ReviewPage"), "Reviews")})
op("/api/v1/products/{id}/reviews", "post", "Review a product you received", tag="reviews", params=ID, body="ReviewInput", errors=[403, 404, 409],
   description="Only a customer with a DELIVERED order containing the product, once per product (409 for a second one).",
   ok={"201": json_body(ref("Review"), "Created")})

# Cart
op("/api/v1/cart", "get", "The caller's cart (emptied after a configurable idle time)", tag="cart", ok={"200": json_body(ref("Cart"), "Cart")})
op("/api/v1/cart/items", "post", "Add a product; the price is captured now", tag="cart", body="CartItemInput", errors=[404, 409],
   description="Adding a product already in the cart adds to its quantity. 409 when stock, the 100-per-line or 100-lines limits, or the cart's currency do not allow it.",
   ok={"201": json_body(ref("CartItem"), "The line added to (new, or the product's line with more quantity)", LOCATION)})
op("/api/v1/cart/items/{id}", "put", "Set a line's quantity", tag="cart", params=ID, body="CartQuantity", errors=[404, 409],
   description="The line takes the product's current price; a product no longer sold is 409.", ok={"200": json_body(ref("Cart"), "The cart")})
op("/api/v1/cart/items/{id}", "delete", "Remove a line", tag="cart", params=ID, errors=[404], ok=NO_CONTENT)

# Orders
op("/api/v1/orders", "post", "Place the cart as an order", tag="orders", body="PlaceOrder", errors=[409],
   params=[{"name": "Idempotency-Key", "in": "header", "required": True, "description": "a new key per order; a retry with the same key and body replays the first answer",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}],
   description="Totals, tax and shipping are computed on the server from each product's price as it is now. The order starts PENDING; the workers "
               "reserve stock, charge and confirm or cancel it. The same key with a different body is 409, and so is a retry while the first request "
               "still runs. 409 also when a line's product is no longer sold (`errors` names it: `items.<product_id>`), and when a price changed "
               "since its line was added: the cart then takes the current prices and `errors` lists the changes; place the order again, or send "
               "`expected_total_cents` equal to the new total to accept it in one go (a different value is 409). With `payment_method: manual` at "
               "most MAX_UNPAID_ORDERS_PER_USER orders may wait for payment at once (409), each for at most MANUAL_PAYMENT_TIMEOUT_SECONDS.",
   ok={"201": json_body(ref("Order"), "Placed (or replayed: `Idempotent-Replayed: true`)")})
op("/api/v1/orders", "get", "The caller's orders, newest first (ADMIN and SUPERADMIN: every order)", tag="orders", params=PAGE_PARAMS,
   ok={"200": json_body(ref("OrderPage"), "Orders")})
op("/api/v1/orders/{id}", "get", "One order with its lines and history", tag="orders", params=ID, errors=[404],
   roles="the owner; ADMIN and SUPERADMIN see all", ok={"200": json_body(ref("Order"), "Order")})
op("/api/v1/orders/{id}/cancel", "post", "Cancel before shipping; stock is released and a charge refunded", tag="orders", params=ID, errors=[404, 409],
   roles="the owner, ADMIN, SUPERADMIN", ok={"200": json_body(ref("Order"), "Cancelled")})
op("/api/v1/orders/{id}/status", "put", "Mark an order SHIPPED or DELIVERED", tag="orders", params=ID, body="StatusChange", errors=[403, 404, 409],
   roles="ADMIN, SUPERADMIN", description="Only CONFIRMED → SHIPPED → DELIVERED; anything else is 409.", ok={"200": json_body(ref("Order"), "Updated")})

# Payments
op("/api/v1/payments/history", "get", "The caller's payments with refunds, newest first", tag="payments", params=PAGE_PARAMS,
   ok={"200": json_body(ref("PaymentPage"), "Payments")})
op("/api/v1/payments/intent", "post", "The payment due for an order placed with `manual`", tag="payments", body="IntentRequest", errors=[404, 409],
   ok={"200": json_body(ref("PaymentIntent"), "What to pay")})
op("/api/v1/payments/confirm", "post", "Pay a manual payment with a card token", tag="payments", body="ConfirmRequest", errors=[404, 409],
   description="The charge goes through the payment worker; confirming twice never charges twice. The order shows the outcome.",
   ok={"202": json_body(ref("PaymentIntent"), "Accepted; status `processing`")})


# Links: where the id an operation needs comes from, so the stateful fuzzing reaches real
# resources rather than random ids.
LINKS = {
    ("/api/v1/auth/register", "post", "201"): {
        "GetUser": ("get_users_id", {"parameters": {"id": "$response.body#/id"}}),
        "ChangeUser": ("put_users_id", {"parameters": {"id": "$response.body#/id"}}),
        "DeactivateUser": ("delete_users_id", {"parameters": {"id": "$response.body#/id"}}),
    },
    ("/api/v1/users/me/addresses", "post", "201"): {
        "ReplaceAddress": ("put_users_me_addresses_id", {"parameters": {"id": "$response.body#/id"}}),
        "DeleteAddress": ("delete_users_me_addresses_id", {"parameters": {"id": "$response.body#/id"}}),
    },
    ("/api/v1/categories", "post", "201"): {
        "ChangeCategory": ("put_categories_id", {"parameters": {"id": "$response.body#/id"}}),
        "DeleteCategory": ("delete_categories_id", {"parameters": {"id": "$response.body#/id"}}),
    },
    ("/api/v1/products", "post", "201"): {
        "GetProduct": ("get_products_id", {"parameters": {"id": "$response.body#/id"}}),
        "ReplaceProduct": ("put_products_id", {"parameters": {"id": "$response.body#/id"}}),
        "ListReviews": ("get_products_id_reviews", {"parameters": {"id": "$response.body#/id"}}),
        "Review": ("post_products_id_reviews", {"parameters": {"id": "$response.body#/id"}}),
        "AddToCart": ("post_cart_items", {"requestBody": {"product_id": "$response.body#/id", "quantity": 1}}),
    },
    ("/api/v1/cart/items", "post", "201"): {
        "SetQuantity": ("put_cart_items_id", {"parameters": {"id": "$response.body#/id"}}),
        "RemoveLine": ("delete_cart_items_id", {"parameters": {"id": "$response.body#/id"}}),
    },
    ("/api/v1/orders", "post", "201"): {
        "GetOrder": ("get_orders_id", {"parameters": {"id": "$response.body#/id"}}),
        "CancelOrder": ("post_orders_id_cancel", {"parameters": {"id": "$response.body#/id"}}),
        "ShipOrder": ("put_orders_id_status", {"parameters": {"id": "$response.body#/id"}}),
        "PaymentIntent": ("post_payments_intent", {"requestBody": {"order_id": "$response.body#/id"}}),
    },
    ("/api/v1/payments/intent", "post", "200"): {
        "ConfirmPayment": ("post_payments_confirm", {"requestBody": {"payment_id": "$response.body#/payment_id", "payment_method": "tok_visa"}}),
    },
}


def document():
    for (path, method, status), links in LINKS.items():
        spec = next(s for p, m, s, _ in OPERATIONS if p == path and m == method)
        spec["responses"][status]["links"] = {name: {"operationId": target, **how} for name, (target, how) in links.items()}
    paths = {}
    for path, method, spec, _ in OPERATIONS:
        paths.setdefault(path, {})[method] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Emporium API", "version": "1.0.0",
            "description": "Orders, catalog, cart and payments. JSON is snake_case; errors are RFC 9457 problem documents. "
                           "Sign in at /api/v1/auth/login and send `Authorization: Bearer <access_token>`.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in ["auth", "users", "catalog", "reviews", "cart", "orders", "payments", "operations"]],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def docs_page():
    rows = []
    for path, method, spec, roles in OPERATIONS:
        rows.append(
            f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
            f"<td>{html.escape(spec['summary'])}</td><td>{html.escape(roles)}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emporium API</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}td,th{{padding:.3rem .6rem;text-align:left;vertical-align:top}}tr:nth-child(even){{background:#f4f4f4}}</style>
</head><body>
<h1>Emporium API</h1>
<p>The machine-readable description is <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI 3.1): request and response schemas, every status code.</p>
<p>Sign in with <code>POST /api/v1/auth/login</code> and send <code>Authorization: Bearer &lt;access_token&gt;</code>. JSON is snake_case. Errors are
<code>application/problem+json</code> (RFC 9457) with the offending fields in <code>errors</code>. Bodies are at most 64 KiB, pages at most 100 items;
too many requests get 429 with <code>Retry-After</code>.</p>
<h2>Roles</h2>
<ul><li><b>CUSTOMER</b>: own profile, addresses, cart, orders, payments, reviews.</li>
<li><b>SELLER</b>: also creates products and manages only its own.</li>
<li><b>ADMIN</b>: the whole catalog, every order (shipping, delivery), users.</li>
<li><b>SUPERADMIN</b>: also changes roles and manages other admins.</li></ul>
<h2>Operations</h2>
<table><tr><th>Method</th><th>Path</th><th>What it does</th><th>Who</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def swift_file():
    doc = json.dumps(document(), indent=1, sort_keys=True, ensure_ascii=True)
    page = docs_page()
    assert '"""#' not in doc and '"""#' not in page
    return (
        "// Generated by scripts/openapi/generate.py; edit that file and run it, not this one.\n\n"
        "/// The OpenAPI 3.1 document served at `/api/v1/openapi.json`, and the `/docs` page.\n"
        "enum OpenAPIDocument {\n"
        "    /// The document, JSON.\n"
        f"    static let json = #\"\"\"\n{doc}\n\"\"\"#\n\n"
        "    /// The human-readable reference, HTML.\n"
        f"    static let docsPage = #\"\"\"\n{page}\"\"\"#\n"
        "}\n"
    )


if __name__ == "__main__":
    content = swift_file()
    if "--check" in sys.argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != content:
            print(f"openapi: {OUTPUT.relative_to(ROOT)} is stale; run python3 scripts/openapi/generate.py", file=sys.stderr)
            sys.exit(1)
        print("openapi: document is current")
    else:
        OUTPUT.write_text(content)
        print(f"openapi: wrote {OUTPUT.relative_to(ROOT)} ({len(OPERATIONS)} operations)")
