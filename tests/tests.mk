# tests/ — placeholder, filled below
