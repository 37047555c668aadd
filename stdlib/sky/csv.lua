-- CSV reader (RFC 4180 plus what real catalog files do): quoted fields with commas, doubled
-- quotes and line breaks inside, CRLF / LF / CR line ends, a missing final newline, a UTF-8 BOM.
-- Primitive API: returns nil, err on malformed input instead of raising.
local M = {}

local _find, _sub, _byte = string.find, string.sub, string.byte
local _QUOTE, _COMMA, _CR, _LF = 34, 44, 13, 10

-- Position just past a line end that starts at i (CRLF counts as one), or nil.
local function _skip_eol(text, i)
  local b = _byte(text, i)
  if b == _CR then
    return _byte(text, i + 1) == _LF and i + 2 or i + 1
  elseif b == _LF then
    return i + 1
  end
end

-- Reads one quoted field starting at the opening quote; returns value and the position after the
-- closing quote, or nil, err.
local function _quoted(text, i, line)
  local parts, n, k = {}, 0, i + 1
  while true do
    local q = _find(text, '"', k, true)
    if not q then return nil, ("line %d: unterminated quoted field"):format(line) end
    n = n + 1
    parts[n] = _sub(text, k, q - 1)
    if _byte(text, q + 1) == _QUOTE then -- "" inside quotes is one literal quote
      n = n + 1
      parts[n] = '"'
      k = q + 2
    else
      return table.concat(parts), q + 1
    end
  end
end

--- Parses CSV text into a list of rows, each a list of strings. Blank lines are skipped.
---@param text string
---@return string[][]|nil rows, string|nil err
function M.parse(text)
  if type(text) ~= "string" then return nil, "csv.parse: expected a string, got " .. type(text) end
  local rows, nrows = {}, 0
  local i, len, line = 1, #text, 1
  if _sub(text, 1, 3) == "\239\187\191" then i = 4 end -- UTF-8 byte order mark
  while i <= len do
    local next_i = _skip_eol(text, i)
    if next_i then -- blank line
      i, line = next_i, line + 1
    else
      local row, nf = {}, 0
      while true do
        local value
        if _byte(text, i) == _QUOTE then
          local start_line = line
          local v, after = _quoted(text, i, line)
          if not v then return nil, after end
          -- line breaks inside the quotes still count for error messages
          for _ in v:gmatch("\n") do line = line + 1 end
          value, i = v, after
          local b = _byte(text, i)
          if b and b ~= _COMMA and b ~= _CR and b ~= _LF then
            return nil, ("line %d: unexpected character after closing quote"):format(start_line)
          end
        else
          local stop = _find(text, "[,\r\n]", i) or len + 1
          value, i = _sub(text, i, stop - 1), stop
        end
        nf = nf + 1
        row[nf] = value
        if _byte(text, i) == _COMMA then
          i = i + 1 -- a trailing comma means one more (empty) field
          if i > len then nf = nf + 1; row[nf] = "" end
        else
          break
        end
        if i > len then break end
      end
      nrows = nrows + 1
      rows[nrows] = row
      i = _skip_eol(text, i) or i
      line = line + 1
    end
  end
  return rows
end

--- Parses CSV text with a header row into records keyed by column name. Missing trailing fields
--- read as ""; rows with more fields than the header are an error (they mean a quoting mistake).
---@param text string
---@return table[]|nil records, string[]|string header_or_err
function M.records(text)
  local rows, err = M.parse(text)
  if not rows then return nil, err end
  local header = rows[1]
  if not header then return nil, "csv: no header row" end
  local out = {}
  for r = 2, #rows do
    local row = rows[r]
    if #row > #header then
      return nil, ("csv: record %d has %d fields, header has %d"):format(r - 1, #row, #header)
    end
    local rec = {}
    for c = 1, #header do rec[header[c]] = row[c] or "" end
    out[r - 1] = rec
  end
  return out, header
end

return M
