-- The order-processing showcase. The simulated services keep their own
-- tables; every write to them goes through the effect ledger, so retries
-- and crash re-runs never charge, email, invoice or restock twice.
CREATE TABLE products (
    sku         text    PRIMARY KEY CHECK (char_length(sku) BETWEEN 1 AND 64),
    name        text    NOT NULL,
    price_cents bigint  NOT NULL CHECK (price_cents > 0),
    stock       integer NOT NULL CHECK (stock >= 0)
);

INSERT INTO products (sku, name, price_cents, stock) VALUES
    ('mug',      'Spool mug',            1200, 100000),
    ('tshirt',   'Spool T-shirt',        2500, 100000),
    ('stickers', 'Sticker pack',          300, 100000),
    ('hoodie',   'Spool hoodie',         5500,  50000),
    ('poster',   'Limited poster',       1800,     50);

CREATE TABLE orders (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_email text        NOT NULL,
    card_last4     text        NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    total_cents    bigint      NOT NULL CHECK (total_cents > 0),
    status         text        NOT NULL DEFAULT 'processing' CHECK (status IN ('processing', 'fulfilled', 'failed')),
    failure        text,
    workflow_id    bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_id    bigint  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku         text    NOT NULL REFERENCES products (sku),
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    price_cents bigint  NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- The payment provider: one capture per order at most (and a refund).
CREATE TABLE payments (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint      NOT NULL UNIQUE REFERENCES orders (id),
    amount_cents bigint      NOT NULL,
    status       text        NOT NULL DEFAULT 'captured' CHECK (status IN ('captured', 'refunded')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint      NOT NULL UNIQUE REFERENCES orders (id),
    payment_id   bigint      NOT NULL,
    amount_cents bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- What the warehouse system was told, per order.
CREATE TABLE inventory_syncs (
    order_id  bigint      NOT NULL REFERENCES orders (id),
    sku       text        NOT NULL,
    delta     integer     NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, sku)
);

ALTER TABLE sim_emails ADD COLUMN order_id bigint;
