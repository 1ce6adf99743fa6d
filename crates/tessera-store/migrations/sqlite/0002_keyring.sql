-- keyring: the signing and refresh MAC keys shared by every instance, sealed (encrypted and
-- authenticated) under the master key each instance gets from its configuration. One row.
create table keyring (
    id      integer primary key check (id = 1),
    version integer not null,    -- raised by each change: writers compare-and-set on it
    sealed  blob not null
);
