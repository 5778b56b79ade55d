-- Run once by the mysql image on a fresh data directory, as root, after it created the
-- xact user and the xact_test database.
CREATE DATABASE IF NOT EXISTS xact_test2;
-- xact_test, xact_test2 and any xact_test_* a test creates for itself.
GRANT ALL PRIVILEGES ON `xact\_test%`.* TO 'xact'@'%';
-- MySQL 8 lists only the caller's own prepared XA branches without it; recovery must see all.
GRANT XA_RECOVER_ADMIN ON *.* TO 'xact'@'%';
ALTER USER 'xact'@'%' IDENTIFIED WITH mysql_native_password BY 'xact';
FLUSH PRIVILEGES;
