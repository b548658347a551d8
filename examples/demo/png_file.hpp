// SPDX-License-Identifier: MIT
// Writes 8-bit RGB pixels as a PNG file, with zlib: the demo's --screenshot needs it, and
// FLTK 1.3 only reads PNG files. The format: the signature, then chunks (length, type, data,
// CRC-32), here IHDR, one IDAT of zlib-compressed rows each led by filter byte 0, and IEND.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace jobsched_demo {

inline void append_big_endian(std::vector<unsigned char>& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<unsigned char>((value >> shift) & 0xFFu));
}

inline void append_chunk(std::vector<unsigned char>& out, const char (&type)[5],
                         const std::vector<unsigned char>& data) {
  append_big_endian(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  const uLong crc = crc32(0L, out.data() + type_at, static_cast<uInt>(out.size() - type_at));
  append_big_endian(out, static_cast<std::uint32_t>(crc));
}

/// Writes `rgb` (width * height pixels, three bytes each, rows top to bottom) to `path`.
/// False when the file cannot be written.
inline bool write_png(const std::string& path, const unsigned char* rgb, int width, int height) {
  const auto row_bytes = static_cast<std::size_t>(width) * 3;
  std::vector<unsigned char> rows;
  rows.reserve((row_bytes + 1) * static_cast<std::size_t>(height));
  for (int y = 0; y < height; ++y) {
    rows.push_back(0);  // filter: none
    const unsigned char* row = rgb + row_bytes * static_cast<std::size_t>(y);
    rows.insert(rows.end(), row, row + row_bytes);
  }
  std::vector<unsigned char> compressed(compressBound(static_cast<uLong>(rows.size())));
  uLongf compressed_size = static_cast<uLongf>(compressed.size());
  if (compress2(compressed.data(), &compressed_size, rows.data(), static_cast<uLong>(rows.size()),
                Z_BEST_COMPRESSION) != Z_OK)
    return false;
  compressed.resize(compressed_size);

  std::vector<unsigned char> header;
  append_big_endian(header, static_cast<std::uint32_t>(width));
  append_big_endian(header, static_cast<std::uint32_t>(height));
  header.insert(header.end(), {8, 2, 0, 0, 0});  // 8 bits, RGB, deflate, no filter, no interlace

  std::vector<unsigned char> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  append_chunk(png, "IHDR", header);
  append_chunk(png, "IDAT", compressed);
  append_chunk(png, "IEND", {});

  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  return static_cast<bool>(file.flush());
}

}  // namespace jobsched_demo
