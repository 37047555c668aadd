#include "host/transfer.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "host/ssh_link.hpp"

namespace skyhost {

namespace {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string copy_local(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(to, ec) && fs::equivalent(from, to, ec)) return "";
  fs::path parent = fs::path(to).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  return ec ? "cannot copy " + from + " to " + to + ": " + ec.message() : "";
}

}  // namespace

void put_file(Link& link, const std::string& local, const std::string& remote, TransferDone done,
              bool only_if_missing) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) {
    done(copy_local(local, remote));
    return;
  }
  ssh::Session& s = ssh_link->session();
  std::string dir = std::filesystem::path(remote).parent_path().string();
  auto upload = [&s, local, remote, done]() {
    s.upload_file(local, remote, ssh::UploadOptions{},
                  [done](const ssh::Status& st) { done(st.error); });
  };
  if (dir.empty() && !only_if_missing) {
    upload();
    return;
  }
  ssh::RunOptions ro;
  ro.timeout = 60;
  std::string cmd = dir.empty() ? "true" : "mkdir -p " + quote(dir);
  if (only_if_missing) cmd += " && { test -f " + quote(remote) + " && echo present; true; }";
  s.run(cmd, ro, [upload, dir, done](ssh::RunResult r) {
    if (!r.exit.ok()) {
      done("cannot create " + dir + " on the node: " + (r.err.empty() ? r.exit.error : r.err));
      return;
    }
    if (r.out.starts_with("present")) return done("");
    upload();
  });
}

void get_file(Link& link, const std::string& remote, const std::string& local, TransferDone done) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) {
    done(copy_local(remote, local));
    return;
  }
  std::string part = local + ".skyhost-part";
  std::FILE* f = std::fopen(part.c_str(), "wb");
  if (f == nullptr) {
    done("cannot write " + part + ": " + std::strerror(errno));
    return;
  }
  uint64_t id = ssh_link->hold(ssh_link->session().exec("cat " + quote(remote)));
  ssh::Channel& ch = ssh_link->held(id);
  auto err = std::make_shared<std::string>();
  auto write_failed = std::make_shared<bool>(false);
  ch.on_data([f, write_failed](std::string_view d) {
    if (std::fwrite(d.data(), 1, d.size(), f) != d.size()) *write_failed = true;
  });
  ch.on_stderr([err](std::string_view d) {
    if (err->size() < 1024) err->append(d.substr(0, 1024 - err->size()));
  });
  ch.on_exit(
      [f, ssh_link, id, err, write_failed, part, local, remote, done](const ssh::ExitInfo& e) {
        bool closed_ok = std::fclose(f) == 0;
        std::string why;
        if (!e.ok()) {
          why = "cannot read " + remote + " on the node: " +
                (!err->empty()      ? *err
                 : !e.error.empty() ? e.error
                                    : "exit status " + std::to_string(e.code));
          while (!why.empty() && why.back() == '\n') why.pop_back();
        } else if (*write_failed || !closed_ok) {
          why = "cannot write " + local;
        } else if (std::rename(part.c_str(), local.c_str()) != 0) {
          why = "cannot rename " + part + " to " + local + ": " + std::strerror(errno);
        }
        if (!why.empty()) std::remove(part.c_str());
        done(why);
        ssh_link->release(id);  // destroys this channel: allowed from its own callback
      });
  ch.send_eof();
}

}  // namespace skyhost
