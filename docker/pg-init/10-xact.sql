-- Run once by the postgres image on a fresh data directory, as POSTGRES_USER (xact), in
-- POSTGRES_DB (xact_test): the second database the tests use for two branches on one server.
CREATE DATABASE xact_test2 OWNER xact;
