-- The intranet application's database (deliberately weak: plain-text
-- passwords, queries built by string concatenation in login.cgi).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT UNIQUE NOT NULL,
    password TEXT NOT NULL,
    fullname TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL
);
INSERT INTO users VALUES (1, 'admin', 'Adm1n#2024', 'Site Administrator', 'admin@example.test', 'admin');
INSERT INTO users VALUES (2, 'jsmith', 'summer2024', 'John Smith', 'jsmith@example.test', 'staff');
INSERT INTO users VALUES (3, 'mtanaka', 'Tanaka!123', 'Mika Tanaka', 'mtanaka@example.test', 'finance');
INSERT INTO users VALUES (4, 'kato', 'password1', 'Ken Kato', 'kato@example.test', 'staff');
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO notes VALUES (1, 'admin', 'VPN', 'Remote access gateway credentials: vpnadmin / Vpn-Adm-2024');
INSERT INTO notes VALUES (2, 'mtanaka', 'Payments', 'Quarterly supplier payment batch is prepared on the file server, finance/.');
INSERT INTO notes VALUES (3, 'jsmith', 'Todo', 'Ask IT to rotate the backup account password.');
