#include "ice/candidate.hpp"
