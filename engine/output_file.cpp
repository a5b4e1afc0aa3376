#include "output_file.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <streambuf>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace redirect::engine {

namespace {

bool writeAll(int fd, const char* data, size_t size, int* error)
{
    while (size > 0) {
        ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *error = n < 0 ? errno : EIO;
            return false;
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

// An ostream's buffer over a descriptor we already opened safely: std::ofstream can only open by
// name, which would follow whatever is at the name by then. Keeps the errno of a failed write.
class FdStreamBuf : public std::streambuf {
public:
    explicit FdStreamBuf(int fd) : fd_(fd), buffer_(64 * 1024) { setp(buffer_.data(), buffer_.data() + buffer_.size()); }
    int error() const { return error_; }

protected:
    int_type overflow(int_type c) override
    {
        if (!flushBuffer())
            return traits_type::eof();
        if (!traits_type::eq_int_type(c, traits_type::eof())) {
            *pptr() = traits_type::to_char_type(c);
            pbump(1);
        }
        return traits_type::not_eof(c);
    }
    int sync() override { return flushBuffer() ? 0 : -1; }

private:
    bool flushBuffer()
    {
        if (error_ || !writeAll(fd_, pbase(), static_cast<size_t>(pptr() - pbase()), &error_))
            return false;
        setp(buffer_.data(), buffer_.data() + buffer_.size());
        return true;
    }
    int fd_;
    int error_ = 0;
    std::vector<char> buffer_;
};

std::string directoryOf(const std::string& path)
{
    size_t slash = path.rfind('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string errnoText(int error) { return std::strerror(error); }

// Why an open failed, in words: ELOOP alone reads "Too many levels of symbolic links", and a FIFO
// without a reader gives ENXIO.
std::string openFailure(const std::string& path, int error)
{
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
        return path + " is a symbolic link; refusing to follow it";
    if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        return path + " is not a regular file";
    return path + ": " + errnoText(error);
}

}  // namespace

AppendFile::~AppendFile()
{
    if (fd_ >= 0)
        ::close(fd_);
}

AppendFile::AppendFile(AppendFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

AppendFile& AppendFile::operator=(AppendFile&& other) noexcept
{
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

bool AppendFile::open(const std::string& path, std::string* error)
{
    // O_NONBLOCK: a FIFO planted at the path must not hang the start; it is refused below anyway.
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) {
        *error = openFailure(path, errno);
        return false;
    }
    struct stat st {};
    std::string refusal;
    if (::fstat(fd, &st) != 0)
        refusal = path + ": " + errnoText(errno);
    else if (!S_ISREG(st.st_mode))
        refusal = path + " is not a regular file";
    else if (st.st_uid != ::geteuid())
        refusal = path + " belongs to uid " + std::to_string(st.st_uid) + ", not to this process (uid " +
                  std::to_string(::geteuid()) + "); refusing to write flows where its owner can read them";
    else if (st.st_nlink != 1)
        refusal = path + " has other hard links; refusing to write through them";
    else if ((st.st_mode & 07777) != 0600 && ::fchmod(fd, 0600) != 0)
        refusal = "make " + path + " mode 0600: " + errnoText(errno);
    else if (::fcntl(fd, F_SETFL, O_APPEND) != 0)
        refusal = path + ": " + errnoText(errno);
    if (!refusal.empty()) {
        ::close(fd);
        *error = refusal;
        return false;
    }
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = fd;
    return true;
}

bool AppendFile::append(std::string_view text, std::string* error)
{
    int e = 0;
    if (fd_ >= 0 && writeAll(fd_, text.data(), text.size(), &e))
        return true;
    *error = fd_ < 0 ? std::string("not open") : errnoText(e);
    return false;
}

bool checkWholeFileTarget(const std::string& path, std::string* error)
{
    if (path.empty() || path.back() == '/') {
        *error = path + " is not a file name";
        return false;
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            *error = path + " is a symbolic link; refusing to follow it";
            return false;
        }
        if (!S_ISREG(st.st_mode)) {
            *error = path + " exists and is not a regular file";
            return false;
        }
    } else if (errno != ENOENT) {
        *error = path + ": " + errnoText(errno);
        return false;
    }
    const std::string dir = directoryOf(path);
    if (::stat(dir.c_str(), &st) != 0) {
        *error = dir + ": " + errnoText(errno);
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        *error = dir + " is not a directory";
        return false;
    }
    if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
        *error = "cannot create files in " + dir + ": " + errnoText(errno);
        return false;
    }
    return true;
}

bool writeWholeFile(const std::string& path, const std::function<bool(std::ostream&)>& write, std::string* error)
{
    const std::string dir = directoryOf(path);
    std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
    if (base.empty()) {
        *error = path + " is not a file name";
        return false;
    }
    // Hidden, next to the target (rename() does not cross file systems), and short enough for NAME_MAX.
    std::string temp = dir + "/." + base.substr(0, 200) + ".XXXXXX";
    int fd = ::mkostemp(temp.data(), O_CLOEXEC);  // O_EXCL, mode 0600: nothing planted is reused
    if (fd < 0) {
        *error = "create a temporary file in " + dir + ": " + errnoText(errno);
        return false;
    }
    std::string failure;
    {
        FdStreamBuf buffer(fd);
        std::ostream out(&buffer);
        bool written = write(out);
        out.flush();
        if (buffer.error())
            failure = "write " + temp + ": " + errnoText(buffer.error());
        else if (!written || !out)
            failure = "writing " + path + " stopped before the end";
    }
    if (failure.empty() && ::fsync(fd) != 0)
        failure = "flush " + temp + ": " + errnoText(errno);
    if (::close(fd) != 0 && failure.empty())
        failure = "close " + temp + ": " + errnoText(errno);
    if (failure.empty() && ::rename(temp.c_str(), path.c_str()) != 0)
        failure = "replace " + path + ": " + errnoText(errno);
    if (!failure.empty()) {
        ::unlink(temp.c_str());
        *error = failure;
        return false;
    }
    return true;
}

}  // namespace redirect::engine
