-- kickmail customer map, schema version 3 (kickmail.conf(5), customer_map).
--
-- Customers for large sites, in an SQLite database that kickmaild reads
-- (read-only) at start and on every reload (SIGHUP, `kickq reload`).
-- Create an empty map:
--     sqlite3 /var/lib/kickmail/customers.sqlite < customers.sql
-- then add customers with the sqlite3 tool (see the example at the end) and
-- reload.  Check it with `kickmaild -n`.
--
-- One row of `customers` per customer, one column per option of a customer
-- section of kickmail.conf, with the same meaning, the same checks and the
-- same defaults: NULL means the default.  Durations and sizes are written
-- as in kickmail.conf ('12h', '500M') or as integers (seconds, bytes).
-- Names, domains and local parts are compared as kickmail.conf's: names in
-- lower case; domains and local parts in any case (stored lower-cased).
-- A bad row makes the whole load fail (the old customers stay in force on a
-- reload, and the log says which row and why); a customer or domain that is
-- also in kickmail.conf is an error too.  Make changes that span several
-- rows in one transaction (BEGIN; ... COMMIT;) so that a reload never sees
-- half of them.  Extra columns and tables are ignored.
--
-- Version 2 adds the table maildrops.  A version 1 map still loads (it has no
-- maildrops); to upgrade one, run the CREATE TABLE maildrops below on it and
-- set PRAGMA user_version = 2.
--
-- Version 3 adds nullable columns to customers (tls_ca, tls_name, autoturn,
-- autoturn_networks).  Version 1 and 2 maps still load (those options at
-- their defaults); to upgrade one, ALTER TABLE customers ADD COLUMN each of
-- them, then set PRAGMA user_version = 3.
PRAGMA user_version = 3;

BEGIN;

CREATE TABLE customers (
    name          TEXT PRIMARY KEY NOT NULL, -- [a-z0-9_-], at most 64
    deliver       TEXT,         -- 'link' (default), 'HOST:PORT', 'maildrop', 'pickup'
    port          INTEGER,      -- port for deliver = 'link' (25)
    online        TEXT,         -- 'detect' (default) or 'always'
    link_ttl      TEXT,         -- a link not refreshed within this goes down (12h)
    connections   INTEGER,      -- parallel delivery connections (2)
    tls           TEXT,         -- delivery TLS: 'none', 'may' (default), 'encrypt', 'verify'
    expect_helo   TEXT,         -- the customer's server must greet with this name
    radius_user   TEXT UNIQUE,  -- RADIUS User-Name / pppd PEERNAME
    interface     TEXT UNIQUE,  -- network interface of the customer's link
    secret        TEXT,         -- ODMR/SMTP AUTH and maildrop password
    quota         TEXT,         -- held bytes; 0 = unlimited (500M)
    hold_time     TEXT,         -- then held mail bounces (5d)
    warn_time     TEXT,         -- 0 = no delay warnings (0)
    retry_min     TEXT,         -- backoff while the link is up (1m)
    retry_max     TEXT,         -- (1h)
    etrn_interval TEXT,         -- minimum time between ETRN flushes (5s)
    -- version 3:
    tls_ca        TEXT,         -- tls = 'verify': trust only this PEM file (system CAs)
    tls_name      TEXT,         -- tls = 'verify': the certificate's name (the host)
    autoturn      INTEGER,      -- 1: an authenticated session raises the link (0)
    autoturn_networks TEXT      -- 'NET,NET': connections from there raise it too
);

-- Every customer needs at least one domain.
CREATE TABLE domains (
    domain        TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    customer      TEXT NOT NULL REFERENCES customers(name)
                  ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX domains_customer ON domains(customer);

-- Optional: the local parts accepted for a customer's domains.  A customer
-- with no rows here accepts every local part.
CREATE TABLE recipients (
    customer      TEXT NOT NULL REFERENCES customers(name)
                  ON UPDATE CASCADE ON DELETE CASCADE,
    local_part    TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (customer, local_part)
);

-- POP3 maildrops, one row per maildrop section of kickmail.conf: mail for
-- the address is delivered into its Maildir (maildir_root/DOMAIN/LOCAL/).
-- Its domain must not be a customer's; the domain's other local parts are
-- refused (550 5.1.1).
CREATE TABLE maildrops (
    address       TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,  -- local@domain
    password      TEXT NOT NULL, -- crypt(3) hash (yescrypt, SHA-512 crypt)
    mode          TEXT,         -- 'delete' (default) or 'keep'
    keep_days     INTEGER,      -- retrieved mail kept this long in keep mode (30)
    quota         TEXT          -- maildrop bytes plus its queued mail; 0 = none (0)
);

COMMIT;

-- Example (the sqlite3 tool enforces REFERENCES and ON DELETE CASCADE only
-- after PRAGMA foreign_keys = ON; kickmaild checks them anyway):
-- BEGIN;
-- INSERT INTO customers (name, deliver, link_ttl, radius_user, quota)
--     VALUES ('acme', 'link', '12h', 'acme', '500M');
-- INSERT INTO domains (domain, customer) VALUES ('acme.example', 'acme');
-- INSERT INTO domains (domain, customer) VALUES ('acme.co.uk', 'acme');
-- INSERT INTO recipients (customer, local_part) VALUES ('acme', 'bob');
-- INSERT INTO customers (name, deliver) VALUES ('beta', '192.0.2.25:25');  -- or a host name: 'mx.beta.example:25'
-- INSERT INTO domains (domain, customer) VALUES ('beta.example', 'beta');
-- INSERT INTO maildrops (address, password, quota)
--     VALUES ('alice@isp.example', '$y$j9T$...', '100M');   -- kickq hash-password
-- COMMIT;
-- Removing a customer with its domains and recipients:
--     sqlite3 -cmd 'PRAGMA foreign_keys = ON' customers.sqlite \
--         "DELETE FROM customers WHERE name = 'beta'"
